"""Training one agent from the command line."""
