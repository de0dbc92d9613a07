"""Neural codecs. `semantic_latent`: an overfitted latent-grid video codec (see docs/codec.md).

- model.py     representation, networks, fixed-point decoder arithmetic (shared)
- entropy.py   integer probability tables, range coding with constriction (shared)
- bitstream.py the .clv file format (no torch)
- training.py  the model being overfitted and its training loop (CUDA graphs, models trained together)
- encoder.py   motion search + training + file writing;  decoder.py  file -> frames (never imports either)
- cost.py      MAC/pixel, TOPS/frame;  presets.py  training budgets;  sweep.py  bench adapter
"""
