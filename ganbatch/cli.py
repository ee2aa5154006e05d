"""The `ganbatch` command line: a thin click front over the job schema and the run_* functions."""
import click

from ganbatch import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganbatch")
def main():
    """Turn folders of face photos into expression videos with GAN face-animation models, and train those models."""


if __name__ == "__main__":
    main()
