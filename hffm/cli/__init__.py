"""Command-line entry points (installed as hffm-train and hffm-pretrain)."""
