//! Safetensors checkpoints.

use crate::small_cfg;
use mlres_train::{ModelConfig, load_checkpoint, run_sft};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

#[test]
fn checkpoint_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let cfg = mlres_train::SftConfig {
        n_layers: 2,
        ..small_cfg(20)
    };
    let mut out = Vec::new();
    let report = run_sft(&cfg, &mut out, Some(&path)).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let md = meta.metadata().as_ref().expect("metadata");
    let mc: ModelConfig = serde_json::from_str(&md["config"]).unwrap();
    assert_eq!(mc, cfg.model_config());
    assert_eq!(md["format"], mlres_train::FORMAT);

    let st = SafeTensors::deserialize(&bytes).unwrap();
    let d = cfg.d_model;
    let expect = [
        ("tok_emb", vec![259, d]),
        ("pos_emb", vec![cfg.max_seq_len, d]),
        ("blocks.0.attn.wq", vec![d, d]),
        ("blocks.1.attn.wo", vec![d, d]),
        ("blocks.1.mlp.w1", vec![d, 4 * d]),
        ("blocks.1.mlp.b2", vec![d]),
        ("blocks.0.ln1.weight", vec![d]),
        ("ln_f.bias", vec![d]),
        ("lm_head", vec![d, 259]),
    ];
    for (name, shape) in expect {
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
    }
    let total: usize = st
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    assert_eq!(total, report.params);
    assert_eq!(st.names().len(), 2 + 12 * 2 + 3);

    // Loading gives back a model with the same held-out loss.
    let model = load_checkpoint(&path).unwrap();
    assert_eq!(model.param_count(), report.params);
    let data = mlres_train::load_dataset(&cfg.data).unwrap();
    let el = mlres_train::eval_loss(&model, &data.eval);
    assert!(
        (el - report.eval_loss).abs() < 1e-9,
        "{el} vs {}",
        report.eval_loss
    );
}

#[test]
fn loading_garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    std::fs::write(&p, b"not a safetensors file").unwrap();
    assert!(matches!(
        load_checkpoint(&p),
        Err(mlres_train::TrainError::Checkpoint { .. })
    ));
    assert!(load_checkpoint(&dir.path().join("missing")).is_err());
}
