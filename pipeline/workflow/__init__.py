"""The recipe engine: the stage runner (``runner``) and what every recipe's stages share
(``common``). The recipes themselves, their stages and configs, live outside the installed
packages, one folder each beside the benchmark suite."""
