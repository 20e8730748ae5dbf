"""An S3-compatible object store for the tests: the stand-in image (.ci/images/s3, moto behind
haproxy's TLS) on a Docker network of the test's own, reached by the stack's containers as
``objectstore:9000`` there and by the tests through a port published on 127.0.0.1 only, with a
certificate of a throwaway CA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import trustme

from tests.conftest import docker_cli, free_port

ALIAS = "objectstore"
"""The store's name on the network: no dot, so that it is never read as a bucket's host."""

KEY_ID = "AKIDTESTOBJECTSTORE"
SECRET_KEY = "test-object-store-secret-key-0123456789"


@dataclass
class ObjectStore:
    """A running store, its CA file and the keys it takes (any, as moto does)."""

    container: str
    port: int
    ca_file: Path

    @property
    def endpoint(self) -> str:
        """What a stack on the network sets as ``db-server:archive.s3_endpoint``."""
        return f"{ALIAS}:9000"

    def client(self) -> Any:
        """A boto3 client from the host."""
        return boto3.client(
            "s3",
            endpoint_url=f"https://127.0.0.1:{self.port}",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            verify=str(self.ca_file),
        )

    def make_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def objects(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, bytes]]:
        """Every object under the prefix, with its bytes."""
        client = self.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                yield item["Key"], body

    def pulumi_backend(self, bucket: str) -> tuple[str, dict[str, str]]:
        """A Pulumi state backend in ``bucket`` (`pulumi login s3://...`) and the environment
        the CLI needs to reach it: the stack's state off the host, as the runbook says."""
        url = f"s3://{bucket}?endpoint=127.0.0.1:{self.port}&s3ForcePathStyle=true&region=us-east-1"
        return url, {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_CA_BUNDLE": str(self.ca_file),
        }

    def stop_answering(self) -> None:
        """Freezes the store (its objects kept in memory): connections hang and time out."""
        docker_cli("pause", self.container)

    def answer_again(self) -> None:
        docker_cli("unpause", self.container)


def start_object_store(image: str, network: str, name: str, certs: Path) -> ObjectStore:
    """Starts the store on ``network`` (which must exist) as ``name``; waits until it answers."""
    certs.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(ALIAS, "127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    cert.private_key_pem.write_to_path(str(certs / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
    for pem in certs.iterdir():
        pem.chmod(0o644)
    port = free_port()
    docker_cli(
        *("run", "-d", "--name", name, "--network", network, "--network-alias", ALIAS),
        *("-p", f"127.0.0.1:{port}:9000", "-v", f"{certs}:/certs:ro", image),
    )
    store = ObjectStore(name, port, certs / "ca.pem")
    deadline = time.monotonic() + 60
    while True:
        try:
            store.client().list_buckets()
            return store
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
