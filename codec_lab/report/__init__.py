"""Rate-distortion analysis and reports: BD-rate, RD plots, HTML."""
