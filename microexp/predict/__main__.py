"""`python -m microexp.predict`: runs microexp.predict.run as the program."""

import runpy

runpy.run_module("microexp.predict.run", run_name="__main__", alter_sys=True)
