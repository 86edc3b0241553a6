# /// script
# requires-python = ">=3.10"
# dependencies = [
#     "torch>=2.6",
#     "transformers>=5.0",
#     "trl>=1.16,<2",
#     "peft>=0.17",
#     "datasets>=4.0",
# ]
# ///
"""Supervised fine-tuning (SFT) with TRL. Written by `mlres init --template sft`.

Run it like TRL's own `trl/scripts/sft.py`; every SFTConfig / TrainingArguments flag works:

    python sft.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name data/ \
        --learning_rate 2e-5 --max_steps 200 --seed 0 \
        --eval_strategy steps --eval_steps 50 \
        --output_dir checkpoint
    # LoRA: add --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules all-linear

Data: a Hub dataset name, a dataset directory (train*/test* files) or one .jsonl/.json/.csv/
.parquet file, with a `messages` column (chat; the tokenizer needs a chat template), a `text`
column, or `prompt` and `completion` (`mlres data inspect DATA` says which it has).

Evaluation: on the held-out split `--dataset_test_split` (default `test`, else `validation`);
when the dataset has neither, `--eval_fraction` of the train split is held out, shuffled with
`--eval_split_seed` (not `--seed`), so every experiment of a campaign evaluates on the same
rows. The last lines are the final held-out evaluation as `trainer.log_metrics` prints it
(`eval_loss = 1.2345`), which mlres reads as the objective; `eval_results.json` in the output
directory has the same numbers.

Pushing: this script never pushes (`--push_to_hub` is refused). mlres copies a finished
experiment's output directory back with `mlres exp artifacts <id>` and uploads it with
`mlres hub push <id> <repo>`, only to a repository listed in program.md's `output_repos`.
"""

import json
import os
import sys
from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import AutoTokenizer

from trl import ModelConfig, ScriptArguments, SFTConfig, SFTTrainer, TrlParser, get_peft_config


@dataclass
class SFTScriptArguments(ScriptArguments):
    eval_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the train split held out for evaluation when the dataset has no test split."},
    )
    eval_split_seed: int = field(
        default=0,
        metadata={"help": "Seed of that hold-out (not --seed, so every experiment evaluates on the same rows)."},
    )


def load_splits(script_args):
    """The train and held-out eval splits of `--dataset_name`."""
    name = script_args.dataset_name
    if os.path.isfile(name):
        ext = os.path.splitext(name)[1].lower()
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(ext)
        if builder is None:
            sys.exit(f"error: {name}: expected a .jsonl, .json, .csv or .parquet file")
        dataset = load_dataset(builder, data_files={script_args.dataset_train_split: name})
    else:
        dataset = load_dataset(name, name=script_args.dataset_config)
    train = dataset[script_args.dataset_train_split]
    for split in (script_args.dataset_test_split, "validation"):
        if split in dataset:
            print(f"eval: the `{split}` split ({len(dataset[split])} rows)", flush=True)
            return train, dataset[split]
    seed = script_args.eval_split_seed
    held = train.train_test_split(test_size=script_args.eval_fraction, seed=seed)
    print(
        f"eval: no `{script_args.dataset_test_split}` split; holding out {len(held['test'])} of "
        f"{len(train)} train rows (seed {seed})",
        flush=True,
    )
    return held["train"], held["test"]


def lora_config(model_args):
    # `--lora_target_modules all-linear` arrives as a one-element list; PEFT wants the string.
    if model_args.lora_target_modules == ["all-linear"]:
        model_args.lora_target_modules = "all-linear"
    return get_peft_config(model_args)


def main(script_args, training_args, model_args):
    if training_args.push_to_hub:
        sys.exit(
            "error: this script does not push. Copy the checkpoint with `mlres exp artifacts <id>` or "
            "upload it with `mlres hub push <id> <repo>` (only to a repo in program.md's output_repos)."
        )
    train, held_out = load_splits(script_args)
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path, trust_remote_code=training_args.trust_remote_code
    )
    training_args.model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=lora_config(model_args),
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    tokenizer.save_pretrained(training_args.output_dir)
    # The final held-out evaluation: the objective mlres reads (the last `eval_loss` printed).
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    # The same numbers at full precision, as one JSON line (log_metrics rounds to 4 decimals).
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float))}), flush=True)


if __name__ == "__main__":
    parser = TrlParser((SFTScriptArguments, SFTConfig, ModelConfig))
    main(*parser.parse_args_and_config())
