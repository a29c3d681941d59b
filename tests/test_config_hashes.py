"""config_hash stability: the prepared-data cache and --resume key on these hashes, so the same
config must hash the same forever. The constants were recorded with the dataclass config (before
the pydantic schema) from every shipped sweep and each of its ablation variants; a change to the
schema, the defaults or the canonical form that moves one of them breaks every existing cache.
(Editing a shipped sweep changes its hashes on purpose: record the new ones then. A sweep added
later records its hashes when it is added: casme_sq and meview with the dataset registry's
CAS(ME)^2 / MEVIEW modules.)

Per variant: (config_hash(variant), data key of its data section (mer.sweep.plan.data_key_of,
what names the prepared data), config_hash(variant.model), config_hash(variant.data.synthetic)).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mer.config import config_hash, load_config, variant_config
from mer.sweep.plan import data_key_of

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"

# fmt: off
BASE_HASHES = {
    "casme2_ablation.yaml": "05fb75c7c3b2d235",
    "casme3.yaml": "a519af42e12c73d8",
    "casme_sq.yaml": "73202400b3a7bb0d",
    "deception.yaml": "7535a5f8dd395fed",
    "demo.yaml": "93569bc9aab6d337",
    "demo_au.yaml": "d7a588d5fbf2d517",
    "demo_search.yaml": "2ddbf1decc9959aa",
    "megc2019_search.yaml": "0b3229cd00249cf0",
    "meview.yaml": "3eb522fc1d76e4cc",
    "samm_ablation.yaml": "bacd337060091077",
    "smic_ablation.yaml": "ac68fe301a54788c",
}
VARIANT_HASHES = {
    "casme2_ablation.yaml#full":
        ("5e1096af6304813b", "95b3389f02e1", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_ce":
        ("1638b3535db525a8", "5dea96b2b4de", "f294af109af98563", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce":
        ("20e6d697e04d376c", "5dea96b2b4de", "f294af109af98563", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_lstm":
        ("5dfbe916bac3be96", "5dea96b2b4de", "2212e1fee286431e", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_gru":
        ("bd577549d6a9e91f", "5dea96b2b4de", "6a365416e8dc0fa4", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_gru_cbam":
        ("919140bd908e7235", "5dea96b2b4de", "77332df45b7bd38e", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_cbam":
        ("966e4c8b8547dcf8", "95b3389f02e1", "7891ed61e8f2f5bc", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_ec_cbam":
        ("cf131d3f0555b83b", "95b3389f02e1", "ee59114259d85e59", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_ec_cbam_mha":
        ("e9e3b3e39f7697d2", "95b3389f02e1", "8903debc87d161cd", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_off":
        ("8fbe5965ae081e24", "5dea96b2b4de", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#regions_all":
        ("a1dd1a62bacf1760", "aa4dd5003810", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#regions_fixed":
        ("1ca517755ef8328a", "5ef8a2e89d78", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_upper":
        ("faf650cdd495ff2e", "aaf0ac6abe6b", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_lower":
        ("e7fe0d23e8a3e923", "a788e4d823d9", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_eyes":
        ("70048e5d2a8b6d35", "2e9d35931f23", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_eyebrows":
        ("865b0ec4b8d9e5e5", "65a6ca559de3", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_cheeks":
        ("6b021dcf36c59548", "27cc66fe2ec6", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme3.yaml#full":
        ("2bf8eec5344115c9", "bcbcb012225b", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#au_off":
        ("811bab187f58d67e", "bca61dc767e6", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#regions_all":
        ("afe443dcb210723d", "f8594831e488", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#regions_fixed":
        ("4321acbd317bac82", "004a3ae9d585", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#single_branch":
        ("7026e301ff3dc556", "bca61dc767e6", "443bcb44394acf71", "1f68eecb6af9b45e"),
    "casme_sq.yaml#full":
        ("95118543307d0ae7", "88acc22aa354", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#au_off":
        ("e4719f5e8c9c7c81", "7d2fcb30eeca", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#regions_all":
        ("9ba6bae1238a3c4f", "8b2ff0c90eb6", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#regions_fixed":
        ("893790f1d9e73f9c", "2105afd3bb0c", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#single_branch":
        ("f614dcda5e6e0a4c", "7d2fcb30eeca", "158a93ad6fbff159", "1f68eecb6af9b45e"),
    "deception.yaml#full":
        ("540fdb91c9a7b35d", "e5f5ecbb78e0", "21f87ef968e77a51", "1f68eecb6af9b45e"),
    "deception.yaml#single_branch":
        ("dfcdbcb577408ca9", "e5f5ecbb78e0", "da007d83336bf369", "1f68eecb6af9b45e"),
    "deception.yaml#cbam":
        ("35f0f12c4c570018", "e5f5ecbb78e0", "ff9ec208b7c9fd76", "1f68eecb6af9b45e"),
    "deception.yaml#mha_pooling":
        ("eec7ae36009d5ed3", "e5f5ecbb78e0", "a3efd6067ff164cc", "1f68eecb6af9b45e"),
    "demo.yaml#full":
        ("2c34dd5b0bd8f032", "b56343f4965a", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo.yaml#regions_all":
        ("870477084f1d3e12", "241e7ad6f723", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo.yaml#regions_fixed":
        ("a5055aa3bc6b5dbd", "6b779c585805", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo.yaml#regions_none":
        ("a787acbd7a59a48c", "40f853d7dcd9", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo.yaml#single_branch":
        ("82b3cc57c99f9e89", "40f853d7dcd9", "3e8ca4dff0b8c216", "e5bbaf0c70fe1494"),
    "demo.yaml#au_upper":
        ("24e255aa385c25ee", "181077dcc9bd", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#full":
        ("238591cce9d594d1", "b56343f4965a", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#au_upper":
        ("bfbed6f3090a7dd4", "181077dcc9bd", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#au_lower":
        ("e8f095565c83229e", "8735a60e1a91", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#au_eyes":
        ("a3efc47b7fef493a", "427b87ed1fb1", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#au_eyebrows":
        ("303986863f8a1147", "e790f9c3dcad", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#au_cheeks":
        ("fc673abb55e30507", "72167e743430", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#regions_all":
        ("a185e9147921d42c", "241e7ad6f723", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_au.yaml#regions_none":
        ("620624e0bcb43b50", "40f853d7dcd9", "9e260774ab8fa9d0", "e5bbaf0c70fe1494"),
    "demo_search.yaml#full":
        ("2ddbf1decc9959aa", "241e7ad6f723", "b50a79ffca9abc49", "e5bbaf0c70fe1494"),
    "megc2019_search.yaml#full":
        ("0b3229cd00249cf0", "ce92bad276b3", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "meview.yaml#full":
        ("8ee78409801b37aa", "dc4d95953883", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#au_off":
        ("6c156dac59657b62", "71a0bb1f5e78", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#regions_all":
        ("55533a36e1ae3058", "a5ffdc2e419a", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#regions_fixed":
        ("06d7e3195e0ec2c6", "25849f500e80", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#single_branch":
        ("06c8400570a05fd3", "71a0bb1f5e78", "102738f933341a98", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#full":
        ("e0aefd1509e94847", "55b62f8b185e", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_ce":
        ("0cf71ee80b42f911", "155b0025eda1", "c89f16616a5db405", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce":
        ("1b0c487c064d1151", "155b0025eda1", "c89f16616a5db405", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_lstm":
        ("12801b34d7161fc2", "155b0025eda1", "8db09c658b4d638c", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_gru":
        ("70087ba60213bece", "155b0025eda1", "6eb9dc693ccf0a4a", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_gru_cbam":
        ("740235d0249533a6", "155b0025eda1", "b002dc843e891ebf", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_cbam":
        ("bd26f1ac74ee59e4", "55b62f8b185e", "91a81ad3fcdd8fb0", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_ec_cbam":
        ("66c0aeac3b360324", "55b62f8b185e", "0207de5ec7dfe920", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_ec_cbam_mha":
        ("65175099799bef9e", "55b62f8b185e", "e1cffdf1d7e9ed18", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_off":
        ("1d047cde146686e1", "155b0025eda1", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#regions_all":
        ("58704edbd6bc1cc7", "036e9b375f62", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#regions_fixed":
        ("42a63070cbc5d92f", "947aafe6fd6f", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_upper":
        ("b9fc4a193fb55821", "39502e31ab8a", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_lower":
        ("4816db4bb8fe7585", "28f8f2d007f1", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_eyes":
        ("fa57b9457c394ac1", "79da040a9734", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_eyebrows":
        ("d0a72cb69a1bdfb4", "45d005579897", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_cheeks":
        ("967dcb2b846748f9", "d9059de344b0", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#full":
        ("66b4a3828bd9f964", "8d5256da7e8f", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_ce":
        ("49e9cbb00156e862", "8d5256da7e8f", "b04675dbadb81e9f", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce":
        ("256ecf2340547f70", "8d5256da7e8f", "b04675dbadb81e9f", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_lstm":
        ("72b0fb8ec5dcc778", "8d5256da7e8f", "81b817867e68c78e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_gru":
        ("fa24637a288c9f7c", "8d5256da7e8f", "bc1cc8b844ae5b93", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_gru_cbam":
        ("7d5814ce05a216a9", "8d5256da7e8f", "d66ee6bc3e77071e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_cbam":
        ("eb93be79235ce910", "8d5256da7e8f", "6846d6762b216e9e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_ec_cbam":
        ("320e68b479b5274c", "8d5256da7e8f", "19ef152e3384d9a6", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_ec_cbam_mha":
        ("03a7b2a0e3949e43", "8d5256da7e8f", "8306eff8821ba101", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#regions_all":
        ("3b17c5b6c29cd9b7", "b07c1440b2aa", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#regions_fixed":
        ("0ad75e83592584f1", "146352f566bb", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
}
# fmt: on


def test_every_shipped_sweep_is_covered():
    assert sorted(BASE_HASHES) == sorted(p.name for p in SWEEPS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(BASE_HASHES))
def test_sweep_and_variant_hashes_are_unchanged(name):
    cfg = load_config(SWEEPS / name)
    assert config_hash(cfg) == BASE_HASHES[name]
    expected = {k.split("#")[1]: v for k, v in VARIANT_HASHES.items() if k.split("#")[0] == name}
    assert list(expected) == cfg.variants
    for variant, hashes in expected.items():
        vcfg = variant_config(cfg, variant)
        got = (
            config_hash(vcfg),
            data_key_of(vcfg.data),
            config_hash(vcfg.model),
            config_hash(vcfg.data.synthetic),
        )
        assert got == hashes, variant
