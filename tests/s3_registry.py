"""A registry backed by object storage, as production registries are: blob GETs redirect.

``docker-registry`` (distribution 2.8) with its ``s3`` storage driver, against a local S3
server (moto's, on 127.0.0.1) reached through a recording ``FaultProxy``, with redirects on:
a blob download is answered ``307`` to a presigned S3 URL, which the client must follow, and
the proxy log shows every request the storage host received (so a test can check that no
registry credentials went there). Basic auth on the registry makes that check meaningful.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests import registry_server
from tests.faultproxy import FaultProxy

BUCKET = "omsign-registry"


@dataclass
class S3Registry:
    server: registry_server.RegistryServer
    storage: FaultProxy  # in front of the S3 server: what the storage host saw
    moto: object

    def stop(self) -> None:
        self.server.stop()
        self.storage.stop()
        stop = getattr(self.moto, "stop", None)
        if callable(stop):
            stop()


def available() -> bool:
    try:
        import boto3  # noqa: F401
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError:
        return False
    return registry_server.available()


def start(username: str = "omsign", password: str = "s3cret-pass") -> S3Registry:
    import bcrypt
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    moto_port = registry_server.free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    storage = FaultProxy(f"http://127.0.0.1:{moto_port}")
    storage.start()
    endpoint = storage.url
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    workdir = Path(tempfile.mkdtemp(prefix="omsign-s3-registry-"))
    port = registry_server.free_port()
    htpasswd = workdir / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{username}:{hashed}\n")
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  s3:",
        "    accesskey: test",
        "    secretkey: test",
        "    region: us-east-1",
        f"    regionendpoint: {endpoint}",
        f"    bucket: {BUCKET}",
        "    secure: false",
        "    v4auth: true",
        "    rootdirectory: /registry",
        "  redirect:",
        "    disable: false",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "auth:",
        "  htpasswd:",
        "    realm: basic-realm",
        f"    path: {htpasswd}",
    ]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    # The AWS SDK inside distribution refuses to start when AWS_CA_BUNDLE names a bundle it
    # cannot apply to its transport; plain HTTP to 127.0.0.1 needs none.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    log = open(workdir / "registry.log", "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [registry_server.BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    server = registry_server.RegistryServer(
        port=port, root=workdir / "unused", process=process, username=username, password=password, workdir=workdir
    )
    try:
        registry_server._wait_ready(server.url, process)
    except Exception:
        tail = (workdir / "registry.log").read_text(errors="replace")[-2000:]
        server.stop()
        storage.stop()
        moto.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"the S3-backed registry did not start: {tail}") from None
    return S3Registry(server, storage, moto)
