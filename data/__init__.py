"""Installed as the package recon.data: the protocols' split files (splits/) and the published numbers
`recon eval` compares against (published.yaml). The bundled sample (four_views/) is not installed."""
