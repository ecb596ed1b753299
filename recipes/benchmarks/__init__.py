"""The benchmark suite behind ``recipes/benchmarks/run.py`` (``make bench``).

It lives with the recipes, outside the installed packages: it compares seqrec against peers
(pocketsphinx, librosa) and is a tool of this repository, not of the library.

- :mod:`recipes.benchmarks.timing`: medians, pairwise ratios, interleaved comparisons, peak
  RSS of child processes, machine description.
- :mod:`recipes.benchmarks.speech`: feature extraction, speech training loop, transcription
  (against pocketsphinx), cold start and memory of a 10-minute file.
- :mod:`recipes.benchmarks.video`: video training loop, clip labelling against its decoding
  and backbone limits, memory of a long video.
- :mod:`recipes.benchmarks.report`: ``results.json`` (with the flat ``ratios`` object) and the
  Markdown table.
- :mod:`recipes.benchmarks.suite`: the command line that runs it all.

Every comparison runs both sides in the same process, one after the other, repeat after repeat,
and reports the median of the pairwise ratios, so that a noisy machine moves both sides alike.
Nothing here makes timed assertions; the tests check the arithmetic and the report format.
"""
