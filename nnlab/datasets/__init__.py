"""Dataset generators and loaders, one module per dataset family."""
