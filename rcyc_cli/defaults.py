"""Every default rcyc uses, defined once. Plain values, no click: the commands' options, the library and
the function's environment all read them from here."""

from __future__ import annotations

# The function defines these; the CLI names them from here like every other default.
from rcyc_core.config import DEFAULT_EVENT_REGION, DEFAULT_POINTER_KEY, DEFAULT_REFRESH_SECONDS  # noqa: F401

# Where models and images live
DEFAULT_BUCKET = "recycle-able-image"
MODELS_PREFIX = "models/"
IMAGES_PREFIX = "images/"
DEFAULT_RESULTS_PREFIX = "results/"
POINTER_KEY = DEFAULT_POINTER_KEY  # the "current model" pointer object (the function defines it)
INDEX_FOLDER = ".rcyc-index/"  # classify's resume index, under the results prefix (classify.resume; the stack's results route)

# The function, as deployed and as emulated locally
DEFAULT_FUNCTION = "rcyc-function"
DEFAULT_REPOSITORY = "rcyc-function"
DEFAULT_TIMEOUT = 180  # seconds (the original hand-made function: 3 minutes)
DEFAULT_MEMORY = 1024  # MB
DEFAULT_FLAVOR = "slim"  # slim: LiteRT runs the .tflite files; keras: TensorFlow runs the .h5 files
FLAVORS = ("slim", "keras")
DEFAULT_BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"
ARCHITECTURES = {"linux/amd64": "x86_64", "linux/arm64": "arm64"}  # --platform -> Lambda's architecture
DEFAULT_ARCHITECTURE = "x86_64"  # Lambda's, when a function's configuration names none
DEFAULT_SQS_BATCH_SIZE = 10  # deploy --trigger --via sqs: messages per invocation

# Local runs
LOCAL_REGION = "us-east-1"
RUNTIMES = ("auto", "docker", "process")  # how the function runs locally; auto: docker when an engine has the base image
DEFAULT_RUNTIME = "auto"
DEFAULT_KEEP_WARM = True  # invoke-local leaves a warm stack behind for the next call (--no-keep-warm, keep_warm = false)
DEFAULT_CONCURRENCY = 1  # invoke-local's instances
DEFAULT_CLASSIFY_CONCURRENCY = 32  # classify's events in flight
DEFAULT_STACK_INSTANCES = 2
STACK_REFRESH_SECONDS = 1  # the warm stack's instances re-check the model pointer at most this often
DEFAULT_STACK_IDLE_SECONDS = 900  # a stack invoke-local left behind stops after this long without a request
DEFAULT_BATCH_SIZE = 16
LAMBDA_MAX_PAYLOAD = 6 * 1024 * 1024  # bytes: what a synchronous Lambda invoke carries (request and response)
# Throwaway credentials, only ever sent to local emulators and the embedded S3: never the user's own.
LOCAL_CREDENTIALS = {"aws_access_key_id": "rcyc-local", "aws_secret_access_key": "rcyc-local-not-a-secret"}

# Models: predicting, evaluating, publishing
BACKENDS = ("auto", "litert", "keras")  # auto: litert when the model has its .tflite files, else keras
DEFAULT_BACKEND = "auto"
EVAL_VIAS = ("predict", "emulator")  # eval --via: the core in-process, or the local emulator pool
DEFAULT_EVAL_VIA = "predict"
DEFAULT_PROMOTE_ON_UPLOAD = True  # upload-model moves the current-model pointer (--no-promote)
MIN_PER_CLASS = 20  # evaluated images per class a promotion gate needs (docs/eval.md)

# Training: rcyc train, its training image (the SageMaker container contract) and SageMaker jobs
DEFAULT_MODEL_NAME = "rcyc-efficientnet-lite0"  # a trained model's name in its manifest
DEFAULT_EPOCHS = 40  # head epochs
DEFAULT_FINE_TUNE_EPOCHS = 3  # with --fine-tune
DEFAULT_VAL_SPLIT = 0.2  # share of each class held out
DEFAULT_SEED = 0
DEFAULT_TRAIN_BASE_IMAGE = "public.ecr.aws/docker/library/python:3.12-slim-bookworm"
DEFAULT_TRAIN_REPOSITORY = "rcyc-train"  # the training image's ECR repository (and local tag rcyc-train:local)
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_MAX_RUNTIME = 3600  # seconds before SageMaker stops a job
