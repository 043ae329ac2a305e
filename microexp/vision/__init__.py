"""Vision: optical flow, faces, alignment, spotting curves, video I/O."""
