"""Standard nbdev 2 setup.py: every setting lives in settings.ini."""
from configparser import ConfigParser
from pathlib import Path
import setuptools, shlex, shutil
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class build_py_with_tutorials(build_py):
    """build_py that also puts the tutorial notebooks (source: nbs/tutorials/*.ipynb) into the built package as
    mwnb/tutorials/, and the checkout's path into mwnb/_checkout.txt (mwnb.config.data_dir() finds ../shared/data
    beside it). An editable install skips both: there the runner reads nbs/tutorials/ of the checkout itself."""
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False): return
        package = Path(self.build_lib) / "mwnb"
        tutorials = package / "tutorials"
        shutil.rmtree(tutorials, ignore_errors=True)   # a tutorial deleted from nbs/ must not linger in build/
        tutorials.mkdir(parents=True)
        found = sorted((HERE / "nbs" / "tutorials").glob("*.ipynb"))
        if not found: raise SystemExit(f"no tutorial notebooks in {HERE / 'nbs' / 'tutorials'}: cannot build mwnb")
        for nb in found: shutil.copy2(nb, tutorials / nb.name)
        (package / "_checkout.txt").write_text(f"{HERE}\n", encoding="utf-8")


config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()

def reqs(key): return shlex.split(cfg.get(key, '').strip())

requirements = reqs('requirements')
xray_requirements = reqs('xray_requirements')
lat_requirements = reqs('lat_requirements')
survey_requirements = reqs('survey_requirements')
sed_requirements = reqs('sed_requirements')
dev_requirements = reqs('dev_requirements')
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
min_python = cfg['min_python']
console_scripts = cfg.get('console_scripts', '').strip()

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Topic :: Scientific/Engineering :: Astronomy'] +
                ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]] +
                (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['mwnb', 'mwnb.*']),
    include_package_data=True,
    # mwnb/contracts/*.yaml: the service contracts mwnb.contracts reads at run time
    package_data={'mwnb': ['data/*', 'contracts/*.yaml', 'contracts/*.md']},
    install_requires=requirements,
    extras_require={'xray': xray_requirements, 'lat': lat_requirements, 'survey': survey_requirements,
                    'sed': sed_requirements, 'dev': dev_requirements,
                    'all': xray_requirements + lat_requirements + survey_requirements + sed_requirements},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    cmdclass={'build_py': build_py_with_tutorials},
    entry_points={'console_scripts': [console_scripts] if console_scripts else [],
                  'mwnb.subcommands': cfg.get('mwnb_subcommands', '').split(),
                  'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']},
    **setup_cfg)
