"""Neural codecs. `semantic_latent`: an overfitted latent-grid video codec (see docs/codec.md).

- model.py     representation, networks, fixed-point decoder arithmetic (shared)
- entropy.py   integer probability tables, range coding with constriction (shared)
- bitstream.py the .clv file format (no torch)
- encoder.py   training and file writing;  decoder.py  file -> frames (never imports encoder)
- cost.py      MAC/pixel, TOPS/frame;  presets.py  training budgets;  sweep.py  bench adapter
"""
