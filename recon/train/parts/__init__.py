"""The few-view parts of the optimisation, one module each; recon/train/registry.py switches them on."""
