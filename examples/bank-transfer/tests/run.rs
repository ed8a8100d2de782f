//! Runs the example: the received transfer credits bob, the declined one is refunded to alice.

#[test]
fn one_transfer_is_received_and_the_declined_one_is_refunded() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bank-transfer"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let out = String::from_utf8(out.stdout).unwrap();
    for line in [
        "transfer t-1: bob received 30",
        "transfer t-2 declined: account carol is closed",
        "transfer t-2 refunded to alice: 20",
        "alice: 70",
        "bob: 30",
        "carol: 0",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
}
