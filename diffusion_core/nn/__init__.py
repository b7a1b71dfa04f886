"""Networks only (no noise schedules, samplers or training loops): blocks, VQ-GAN, U-Net."""
