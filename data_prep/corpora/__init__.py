"""The embedded corpora that seqrec generates itself, offline, from installed packages.

- :mod:`~data_prep.corpora.speech_corpus`: many-engine English speech
  (:mod:`~data_prep.corpora.tts_engines` voices reading :mod:`~data_prep.corpora.text_sources`
  sentences, or :mod:`~data_prep.corpora.text_gen` template sentences);
- :mod:`~data_prep.corpora.video_corpus`: rendered action clips (:mod:`~data_prep.corpora.video_figure`).

They sit on top of the rest of ``data_prep`` (audio and video I/O, manifests, the text
normaliser), which never imports them: the real-data path works without any of this.
"""
