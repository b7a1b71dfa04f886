"""Generative core of mdiff: volume I/O, presets, preprocessing, VQ-GAN, latent DDPM."""
