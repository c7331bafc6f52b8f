"""The training engine: how a round's devices train (one at a time or in batched passes) and are evaluated.

The round loop only sees ``DeviceJob`` -> ``Trainer`` -> ``TrainResult`` (``hffm.engine.jobs``).
"""

from hffm.engine.batched import train_devices
from hffm.engine.jobs import DeviceJob, LocalConfig, Trainer, TrainResult

__all__ = ["DeviceJob", "LocalConfig", "TrainResult", "Trainer", "train_devices"]
