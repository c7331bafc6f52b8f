"""Hydra configs of ``hffm-train`` and ``hffm-pretrain``, one folder per config group.

Shipped inside the package as ``hffm.conf`` (``hffm/conf`` links here), so the CLIs find them with
``pkg://hffm.conf`` wherever hffm is installed, not only in a source checkout.
"""
