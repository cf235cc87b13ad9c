"""``rcyc classify s3://BUCKET/PREFIX``: a whole prefix of images through the function (the local pool or
AWS Lambda, through the same Lambda Invoke API), resumable, with results written back to S3."""
