"""Learning rules on top of the eligibility traces (the REFLECT three-factor learner)."""
