"""The paper's evaluation: MS-SSIM diversity, reader agreement, visual Turing test, figures."""
