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
"""Group Relative Policy Optimization (GRPO) with a verifiable reward, with TRL.
Written by `mlres init --template grpo`.

Run it like TRL's own `trl/scripts/grpo.py`; every GRPOConfig / TrainingArguments flag works:

    python grpo.py \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct \
        --dataset_name data/ \
        --learning_rate 1e-6 --max_steps 200 --seed 0 \
        --num_generations 4 --per_device_train_batch_size 4 --max_completion_length 128 \
        --output_dir checkpoint
    # LoRA: add --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules all-linear

What GRPO needs:
- Data with a `prompt` column (a string, or chat messages for a model with a chat template)
  and the column the reward checks against, `answer` (`--answer_column`): for each prompt the
  model samples `--num_generations` completions and learns from how their rewards differ.
- A reward. This script ships one verifiable reward, `numeric_answer_reward`: 1.0 when the last
  number in a completion equals the last number in the row's answer (`42`, `-3.5`, or
  GSM8K-style `... #### 42`), else 0.0. No reward model, nothing learned, nothing to game but
  the answer itself. Add your own functions to REWARD_FUNCS (each gets the completions and
  every dataset column as keyword arguments and returns one float per completion).
- No reference model: `--beta` defaults to 0 (no KL term) in TRL 1.x; with `--beta > 0` a
  frozen copy of the starting policy is loaded (with LoRA, the adapter-disabled base).

Evaluation: on the held-out split `--dataset_test_split` (default `test`, else `validation`);
when the dataset has neither, `--eval_fraction` of the train split is held out, shuffled with
`--eval_split_seed` (not `--seed`), so every experiment evaluates on the same rows. The final
held-out evaluation is printed last as `trainer.log_metrics` prints it (`eval_reward = 0.25`,
the mean reward over the held-out prompts), which mlres reads as the objective;
`eval_results.json` in the output directory has the same numbers.

Pushing: this script never pushes (`--push_to_hub` is refused). mlres copies a finished
experiment's output directory back with `mlres exp artifacts <id>` and uploads it with
`mlres hub push <id> <repo>`, only to a repository listed in program.md's `output_repos`.
"""

import json
import os
import re
import sys
from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import AutoTokenizer

from trl import GRPOConfig, GRPOTrainer, ModelConfig, ScriptArguments, TrlParser, get_peft_config

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number(text):
    """The last number in `text` (thousands separators removed), or None."""
    found = NUMBER.findall(str(text).replace(",", ""))
    return float(found[-1]) if found else None


def numeric_answer_reward(completions, answer, **kwargs):
    """1.0 when a completion's last number equals its row's answer, else 0.0."""
    rewards = []
    for completion, expected in zip(completions, answer):
        # Conversational data gives a list of messages; the last one is the model's.
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        got, want = last_number(text), last_number(expected)
        rewards.append(1.0 if got is not None and want is not None and got == want else 0.0)
    return rewards


REWARD_FUNCS = [numeric_answer_reward]


@dataclass
class GRPOScriptArguments(ScriptArguments):
    answer_column: str = field(
        default="answer",
        metadata={"help": "The column numeric_answer_reward compares the completion's final number with."},
    )
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
    for split in list(dataset):
        missing = {"prompt", script_args.answer_column} - set(dataset[split].column_names)
        if missing:
            sys.exit(f"error: split `{split}`: GRPO with numeric_answer_reward needs columns prompt and "
                     f"{script_args.answer_column}; missing {', '.join(sorted(missing))}")
        if script_args.answer_column != "answer":
            dataset[split] = dataset[split].rename_column(script_args.answer_column, "answer")
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
    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=REWARD_FUNCS,
        args=training_args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=lora_config(model_args),
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    tokenizer.save_pretrained(training_args.output_dir)
    # The final held-out evaluation: the objective mlres reads (the last `eval_reward` printed).
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    # The same numbers at full precision, as one JSON line (log_metrics rounds to 4 decimals).
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float))}), flush=True)


if __name__ == "__main__":
    parser = TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig))
    main(*parser.parse_args_and_config())
