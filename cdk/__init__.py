"""The codec-lab CDK app: one stack (`CodecLabStack`) built from a few constructs."""
