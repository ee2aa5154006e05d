"""Input and output: photos (`images`), ffmpeg video (`video`) and files at local paths or S3 URIs (`storage`).

Nothing is imported here, so `ganbatch.io.uris` and `ganbatch.io.atomic` (standard library only) can be used without
the cloud stack that `storage` brings (boto3).
"""
