"""Transcribes wav files with pocketsphinx's default English model and prints the text.

The cold-start peer of ``seqrec transcribe`` when the C ``pocketsphinx`` program (which the
PyPI package does not install) is absent: ``python sphinx_cli.py FILE.wav [...]``. It is run
as a script by path, so it imports only the standard library and pocketsphinx, as a minimal
command would.
"""

from __future__ import annotations

import sys
import wave


def main(argv: list[str]) -> int:
    """Decodes each 16-bit mono wav named in ``argv``; prints ``path<TAB>text`` lines."""
    # lazy: optional extra seqrec[bench]
    from pocketsphinx import Decoder

    if not argv:
        print("usage: sphinx_cli.py FILE.wav [FILE.wav ...]", file=sys.stderr)
        return 2
    decoder = None
    status = 0
    for path in argv:
        try:
            with wave.open(path, "rb") as fh:
                if fh.getsampwidth() != 2 or fh.getnchannels() != 1:
                    raise ValueError("need 16-bit mono PCM")
                rate, pcm = fh.getframerate(), fh.readframes(fh.getnframes())
        except (OSError, EOFError, ValueError, wave.Error) as exc:
            print(f"sphinx_cli: error: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        if decoder is None or int(decoder.config["samprate"]) != rate:
            decoder = Decoder(samprate=rate)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        print(f"{path}\t{hyp.hypstr if hyp is not None else ''}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
