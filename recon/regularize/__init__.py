"""Few-view regularisation that needs no learned weights: pseudo views between the training
cameras, floater pruning, FSGS-style proximity densification and CoR-GS-style co-regularisation.
The loss terms themselves live in recon.losses; the optimise stage wires them in."""
