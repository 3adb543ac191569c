"""The ``ssim-pipeline`` command: parser, subcommands, progress and the demo."""
