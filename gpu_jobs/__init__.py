"""SageMaker job entry points: thin wrappers over `codec_lab.aws.jobs` (the contract) and the library."""
