# Packages of the light-curve and cutout tests (sinks/tests/lightcurve.rs, cutout.rs):
# their Python scripts read the files back with astropy, numpy and Pillow
# (fastavro, which decodes the alerts independently, is installed by scripts/test).
python3 -c 'import astropy' 2>/dev/null || pip_missing+=(astropy)
python3 -c 'import numpy' 2>/dev/null || pip_missing+=(numpy)
python3 -c 'import PIL' 2>/dev/null || pip_missing+=(pillow)
pip_check+=(astropy astropy.io.votable astropy.visualization numpy PIL)
