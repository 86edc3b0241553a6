//! Safetensors checkpoints: every parameter tensor as f32 plus the model config in metadata.

use crate::error::TrainError;
use crate::model::{Model, ModelConfig};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding the [`ModelConfig`] as JSON.
pub const META_CONFIG: &str = "config";
/// Metadata key holding the format tag.
pub const META_FORMAT: &str = "format";
/// Format tag value.
pub const FORMAT: &str = "mlres-train/v1";

fn cerr(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Saves all parameters of `model` to a safetensors file at `path`.
pub fn save_checkpoint(
    model: &Model,
    extra_meta: &[(&str, String)],
    path: &Path,
) -> Result<(), TrainError> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .specs()
        .iter()
        .map(|s| {
            let bytes = model.params[s.offset..s.offset + s.len]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (s.name.clone(), s.shape.clone(), bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(buffers.len());
    for (name, shape, bytes) in &buffers {
        let v = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| cerr(path, e.to_string()))?;
        views.push((name.clone(), v));
    }
    let mut meta = HashMap::new();
    meta.insert(
        META_CONFIG.to_string(),
        serde_json::to_string(model.config()).map_err(|e| cerr(path, e.to_string()))?,
    );
    meta.insert(META_FORMAT.to_string(), FORMAT.to_string());
    meta.insert(
        "tokenizer".to_string(),
        "bytes 0-255, bos=256, eos=257, pad=258".to_string(),
    );
    meta.insert(
        "layout".to_string(),
        "linear weights are [in, out]: y = x @ W".to_string(),
    );
    for (k, v) in extra_meta {
        meta.insert((*k).to_string(), v.clone());
    }
    let bytes =
        safetensors::tensor::serialize(views, Some(meta)).map_err(|e| cerr(path, e.to_string()))?;
    std::fs::write(path, bytes).map_err(|e| cerr(path, e.to_string()))
}

/// Loads a checkpoint written by [`save_checkpoint`].
pub fn load_checkpoint(path: &Path) -> Result<Model, TrainError> {
    let buf = std::fs::read(path).map_err(|e| cerr(path, e.to_string()))?;
    let (_, md) = SafeTensors::read_metadata(&buf).map_err(|e| cerr(path, e.to_string()))?;
    let cfg_json = md
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_CONFIG))
        .ok_or_else(|| cerr(path, "metadata has no `config`"))?;
    let cfg: ModelConfig =
        serde_json::from_str(cfg_json).map_err(|e| cerr(path, format!("bad config: {e}")))?;
    if cfg.d_model == 0
        || cfg.n_heads == 0
        || !cfg.d_model.is_multiple_of(cfg.n_heads)
        || cfg.d_ff == 0
        || cfg.max_seq_len == 0
        || cfg.vocab_size != crate::model::VOCAB_SIZE
    {
        return Err(cerr(path, "inconsistent model config"));
    }
    let st = SafeTensors::deserialize(&buf).map_err(|e| cerr(path, e.to_string()))?;
    let mut model = Model::zeros(cfg);
    for spec in model.specs().to_vec() {
        let t = st
            .tensor(&spec.name)
            .map_err(|e| cerr(path, format!("{}: {e}", spec.name)))?;
        if t.dtype() != Dtype::F32 || t.shape() != spec.shape.as_slice() {
            return Err(cerr(
                path,
                format!("tensor {} has wrong dtype or shape", spec.name),
            ));
        }
        for (dst, chunk) in model.params[spec.offset..spec.offset + spec.len]
            .iter_mut()
            .zip(t.data().chunks_exact(4))
        {
            *dst = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    Ok(model)
}
