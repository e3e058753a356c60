"""recon's presets (installed as the package recon.configs): YAML files that override RunConfig's defaults."""
