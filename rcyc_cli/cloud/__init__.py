"""The AWS side: S3 buckets and the model store, the image registry (ECR), IAM and Lambda, and the audit."""
