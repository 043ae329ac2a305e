"""`python -m microexp.report`: runs microexp.report.workdirs as the program."""

import runpy

runpy.run_module("microexp.report.workdirs", run_name="__main__", alter_sys=True)
