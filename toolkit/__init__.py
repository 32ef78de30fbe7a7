"""desta-toolkit: train and evaluate Large Audio Language Models with DeSTA2.5-Audio's self-generated alignment.

Heavy modules (torch, transformers, lightning) are imported lazily by the parts that need them, so
``import toolkit`` and CLI start-up stay fast.
"""

import os as _os

# OpenMP threads that spin while waiting stall for seconds when another process shares the cores
# (measured: a bf16 matmul loop 31.7 s spinning vs 2.0 s passive on 2 busy cores). Set before torch
# loads; an explicit OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def _register_with_transformers() -> None:
    from toolkit.models.hf_auto import register

    register()


class _TransformersHook:
    """Registers our ``AutoConfig``/``AutoModel`` pair once ``transformers`` finishes importing.

    ``import toolkit`` must stay cheap (no transformers, no torch: CLIs start in milliseconds), yet
    ``AutoModel.from_pretrained(export_dir)`` must work in any process that imported toolkit, with no
    ``trust_remote_code``. So the registration runs right after ``transformers``' own import, whoever
    triggers it, or at once if it is already imported (see toolkit/models/hf_auto.py).
    """

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        import importlib.machinery
        import sys

        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding this hook
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            try:
                _register_with_transformers()
            except Exception as err:  # never break `import transformers` itself; say what is lost and why
                import warnings

                warnings.warn(f"desta-toolkit: AutoModel/AutoConfig registration failed ({type(err).__name__}: {err}); "
                              f"load exports with toolkit.LALM.from_pretrained instead", stacklevel=2)

        spec.loader.exec_module = exec_module
        return spec


def _install_transformers_hook() -> None:
    import sys

    if "transformers" in sys.modules:
        _register_with_transformers()
    elif not any(isinstance(f, _TransformersHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TransformersHook())


_install_transformers_hook()


def __getattr__(name: str):
    if name == "LALM":  # from toolkit import LALM
        from toolkit.models.lalm import LALM

        return LALM
    raise AttributeError(name)
