"""Example applications that use the maintenance control plane."""
