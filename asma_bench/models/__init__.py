"""Models built on the encoders: ASMa's feature alignment module (eqs. 10–12), the
classifiers the protocols train and evaluate, and their standardised linear heads."""
