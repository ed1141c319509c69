"""omsign: pack, push, sign and verify ML models as OCI artifacts."""
