//! Hand-computed losses.

use mlres_train::model::{BOS, EOS, VOCAB_SIZE};
use mlres_train::{Batch, Model, ModelConfig, Seq};

fn cfg() -> ModelConfig {
    ModelConfig {
        vocab_size: VOCAB_SIZE,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        d_ff: 16,
        max_seq_len: 8,
    }
}

fn seq() -> Seq {
    Seq {
        tokens: vec![
            BOS,
            b'1' as u32,
            b'+' as u32,
            b'2' as u32,
            b'=' as u32,
            b'3' as u32,
            EOS,
        ],
        loss_start: 5,
    }
}

#[test]
fn zero_output_weights_give_ln_vocab() {
    let mut m = Model::init(cfg(), 3, 0.5);
    m.tensor_mut("lm_head").unwrap().fill(0.0);
    let b = Batch::from_seqs([&seq()]);
    assert_eq!(b.n_targets(), 2); // "3" and EOS
    let loss = m.loss(&b);
    assert!(
        (loss - (VOCAB_SIZE as f64).ln()).abs() < 1e-5,
        "loss {loss}"
    );
}

#[test]
fn known_logits_give_hand_computed_loss() {
    // ln_f gain 0, bias e0 => the final hidden state is e0 at every position, so the logits
    // equal row 0 of lm_head, which we set to a known vector.
    let mut m = Model::init(cfg(), 3, 0.5);
    m.tensor_mut("ln_f.weight").unwrap().fill(0.0);
    let bias = m.tensor_mut("ln_f.bias").unwrap();
    bias.fill(0.0);
    bias[0] = 1.0;
    let head = m.tensor_mut("lm_head").unwrap();
    head.fill(0.0);
    // logits: token '3' -> 2.0, EOS -> 1.0, token 'a' -> -1.0, everything else 0.
    head[b'3' as usize] = 2.0;
    head[EOS as usize] = 1.0;
    head[b'a' as usize] = -1.0;
    let b = Batch::from_seqs([&seq()]);
    let z = (VOCAB_SIZE as f64 - 3.0) + 2f64.exp() + 1f64.exp() + (-1f64).exp();
    let want = ((z.ln() - 2.0) + (z.ln() - 1.0)) / 2.0;
    let got = m.loss(&b);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // The logits themselves are exactly that vector.
    let logits = m.logits(&b);
    assert_eq!(logits.len(), 2 * VOCAB_SIZE);
    assert_eq!(logits[b'3' as usize], 2.0);
    assert_eq!(logits[VOCAB_SIZE + EOS as usize], 1.0);
}

#[test]
fn prompt_tokens_are_masked() {
    let m = Model::init(cfg(), 4, 0.3);
    let s = seq();
    let only_completion = Batch::from_seqs([&s]);
    let all = Batch::from_seqs([&Seq {
        tokens: s.tokens.clone(),
        loss_start: 1,
    }]);
    assert_eq!(only_completion.n_targets(), 2);
    assert_eq!(all.n_targets(), 6);
    // The completion-only loss averages just the 2 completion targets.
    assert!((m.loss(&only_completion) - m.loss(&all)).abs() > 1e-6);
}

#[test]
fn packed_sequences_do_not_attend_across_boundaries() {
    let m = Model::init(cfg(), 5, 0.3);
    let a = seq();
    let other = Seq {
        tokens: vec![BOS, b'9' as u32, b'9' as u32, EOS],
        loss_start: 1,
    };
    let alone = m.loss_sum(&Batch::from_seqs([&a])).0;
    let with_other =
        m.loss_sum(&Batch::from_seqs([&other, &a])).0 - m.loss_sum(&Batch::from_seqs([&other])).0;
    assert!((alone - with_other).abs() < 1e-4, "{alone} vs {with_other}");
}
