"""verify-local against signatures made by model_signing 1.1.1 itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci_model_sign.errors import InputError, VerificationError
from oci_model_sign.verify.local import verify_local
from oci_model_sign.verify.policy import KeyPolicy

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    keys = tmp_path_factory.mktemp("keys")
    priv, pub = keys / "k.pem", keys / "k.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture(scope="module")
def signed_template(tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, Path]) -> Path:
    """One folder signed by the model_signing CLI per module (a child process costs ~1 s)."""
    if not MODEL_SIGNING.exists():
        pytest.skip("model_signing CLI is not installed")
    model = tmp_path_factory.mktemp("signed") / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (model / "sub" / "tokenizer.json").write_text("{}")
    (model / "a-b").write_text("dash")
    (model / "a").mkdir()
    (model / "a" / "b").write_text("slash")  # a/b vs a-b: PurePosixPath order matters
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref")
    subprocess.run(
        [str(MODEL_SIGNING), "sign", "key", str(model), "--private_key", str(keypair[0]), "--signature", str(model / "model.sig")],
        check=True, capture_output=True,
    )
    return model


@pytest.fixture
def signed_model(tmp_path: Path, signed_template: Path) -> Path:
    """A private copy of the signed folder, for the test to tamper with."""
    model = tmp_path / "model"
    shutil.copytree(signed_template, model, symlinks=True)
    return model


def policy(keypair: tuple[Path, Path]) -> KeyPolicy:
    return KeyPolicy(keypair[1], ignore_tlog=True)


def test_model_signing_signature_verifies(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    result = verify_local(signed_model, signed_model / "model.sig", policy(keypair))
    assert result.ok, result.summary()
    assert result.subject_digest.startswith("sha256:")
    assert result.accepted is not None and result.accepted.kind == "model-signing-bundle"


def test_signature_outside_the_folder_verifies(signed_model: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.sig"
    shutil.move(signed_model / "model.sig", outside)
    # model_signing recorded "model.sig" in ignore_paths; nothing else changed
    assert verify_local(signed_model, outside, policy(keypair)).ok


def test_tampered_file_is_reported(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    with open(signed_model / "weights.bin", "r+b") as f:
        f.seek(1024 * 1024)
        f.write(b"X")
    result = verify_local(signed_model, signed_model / "model.sig", policy(keypair))
    assert not result.ok
    assert "1 modified: weights.bin" in result.candidates[0].reason
    with pytest.raises(VerificationError, match=r"weights\.bin"):
        result.raise_if_failed()


def test_extra_and_missing_files_are_reported(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    (signed_model / "sub" / "tokenizer.json").unlink()
    (signed_model / "backdoor.py").write_text("import os")
    reason = verify_local(signed_model, signed_model / "model.sig", policy(keypair)).candidates[0].reason
    assert "missing from the folder: sub/tokenizer.json" in reason
    assert "not signed: backdoor.py" in reason


def test_ignore_paths_exclude_files(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    (signed_model / "notes").mkdir()
    (signed_model / "notes" / "x.txt").write_text("x")
    assert verify_local(signed_model, signed_model / "model.sig", policy(keypair), ignore_paths=["notes"]).ok


def test_git_paths_are_ignored(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    (signed_model / ".git" / "index").write_text("changed")
    (signed_model / ".gitignore").write_text("*.tmp")
    assert verify_local(signed_model, signed_model / "model.sig", policy(keypair)).ok


def test_wrong_key_fails_before_hashing(signed_model: Path, tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    result = verify_local(signed_model, signed_model / "model.sig", KeyPolicy(other, ignore_tlog=True))
    assert not result.ok and "does not verify" in result.candidates[0].reason


def test_symlink_is_refused_unless_allowed(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    (signed_model / "weights.bin").rename(signed_model.parent / "real.bin")
    (signed_model / "weights.bin").symlink_to(signed_model.parent / "real.bin")
    with pytest.raises(InputError, match="symbolic link"):
        verify_local(signed_model, signed_model / "model.sig", policy(keypair))
    assert verify_local(signed_model, signed_model / "model.sig", policy(keypair), allow_symlinks=True).ok


def test_single_worker_gives_the_same_answer(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    assert verify_local(signed_model, signed_model / "model.sig", policy(keypair), max_workers=1).ok


def test_missing_signature_file_is_an_input_error(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    with pytest.raises(InputError):
        verify_local(signed_model, signed_model / "nope.sig", policy(keypair))


def test_to_json_lists_the_candidate(signed_model: Path, keypair: tuple[Path, Path]) -> None:
    doc = json.loads(verify_local(signed_model, signed_model / "model.sig", policy(keypair)).to_json())
    assert doc["ok"] is True and len(doc["candidates"]) == 1
