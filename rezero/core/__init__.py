"""What every stage uses: params (typed and validated), errors, atomic files and the runtime setup."""
