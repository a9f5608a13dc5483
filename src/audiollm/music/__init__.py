"""The symbolic-music domain that data, decoding, generation and metrics share: notes and MIDI
files, instruments, keys and tempo classes, request parsing, tempo and key analysis, the
event grammar, tempo fitting and rendering through a soundfont."""
