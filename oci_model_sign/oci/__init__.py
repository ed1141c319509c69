"""OCI wire vocabulary: media types, annotation keys, descriptors and manifest bytes.

A leaf package: it imports only the standard library and omsign's leaf modules (``errors``,
``digest``, ``limits``), so stores, model packing, signing and verification all share one
definition of every string that goes on the wire and one way of building manifest bytes.
"""
