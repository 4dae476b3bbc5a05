"""Models trained by the stages: hand-written numpy ones and their PyTorch twins."""
