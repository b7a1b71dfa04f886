"""Command-line entry points of diffusion_core."""
