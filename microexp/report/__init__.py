"""Reports of training workdirs: figures, tables, comparisons."""
