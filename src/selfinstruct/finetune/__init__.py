"""Stage 5: fine-tune a model on its own Self-Instruct data (TRL SFTTrainer, PEFT LoRA or full).

Heavy libraries (torch, transformers, trl, peft) are imported only when training starts.
"""

from selfinstruct.finetune.config import FinetuneConfig, FinetuneSettings, build_config, load_yaml_config
from selfinstruct.finetune.train import FinetuneSummary, run_finetune

__all__ = [
    "FinetuneConfig",
    "FinetuneSettings",
    "FinetuneSummary",
    "build_config",
    "load_yaml_config",
    "run_finetune",
]
