"""config_hash stability: the prepared-data cache and --resume key on these hashes, so the same
config must hash the same forever. The constants were recorded with the dataclass config (before
the pydantic schema) from every shipped sweep and each of its ablation variants; a change to the
schema, the defaults or the canonical form that moves one of them breaks every existing cache.
(Editing a shipped sweep changes its hashes on purpose: record the new ones then. A sweep added
later records its hashes when it is added: casme_sq and meview with the dataset registry's
CAS(ME)^2 / MEVIEW modules.)

Recorded again on purpose when data.faces arrived (face detection, tracking, coverage, per-clip
boxes and the face crop; README "Faces"): its defaults detect and cut faces differently for dlib
landmarks, so
(*)  the sweeps that reproduce the original (casme2/samm/smic ablation, casme3) spell out the
     original's face handling in `data.faces`: their configs hash differently, their data keys
     (the arrays) are unchanged; the new faces_* variants measure what the new handling changes;
(**) megc2019_search (a search, not a reproduction) takes the new dlib defaults (min_score 0.5,
     tracking, per-clip boxes): its data key changes because its arrays do.
Every other value is unchanged: data.faces at its defaults leaves the plain form (and the hash) of
a config as it was, and changes no array for annotated landmarks or policies without landmarks.

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
    "casme2_ablation.yaml": "1d8b34847139a7c8",  # faces (*)
    "casme3.yaml": "9db4a46ed2c3dfe0",  # faces (*)
    "casme_sq.yaml": "7620d51f3866b35b",  # faces spelled out (*)
    "deception.yaml": "7535a5f8dd395fed",
    "demo.yaml": "93569bc9aab6d337",
    "demo_au.yaml": "d7a588d5fbf2d517",
    "demo_search.yaml": "2ddbf1decc9959aa",
    "megc2019_search.yaml": "0b3229cd00249cf0",
    "meview.yaml": "80236e44a76f32df",  # faces spelled out (*)
    "samm_ablation.yaml": "39233098554b84ad",  # faces (*)
    "smic_ablation.yaml": "945448a11013e035",  # faces (*)
}
VARIANT_HASHES = {
    "casme2_ablation.yaml#full":  # data.faces spelled out (*)
        ("38dbb309d7f1e58d", "95b3389f02e1", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_ce":  # data.faces spelled out (*)
        ("4d91a3c5a57c78ec", "5dea96b2b4de", "f294af109af98563", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce":  # data.faces spelled out (*)
        ("717e9dcb4f94073a", "5dea96b2b4de", "f294af109af98563", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_lstm":  # data.faces spelled out (*)
        ("67e71fcf4a1539f2", "5dea96b2b4de", "2212e1fee286431e", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_gru":  # data.faces spelled out (*)
        ("34b0ff80f009da8e", "5dea96b2b4de", "6a365416e8dc0fa4", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#single_wce_gru_cbam":  # data.faces spelled out (*)
        ("b5565d0c6226fded", "5dea96b2b4de", "77332df45b7bd38e", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_cbam":  # data.faces spelled out (*)
        ("7c909d837e3da0f5", "95b3389f02e1", "7891ed61e8f2f5bc", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_ec_cbam":  # data.faces spelled out (*)
        ("63e78229ded7570c", "95b3389f02e1", "ee59114259d85e59", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#dual_ec_cbam_mha":  # data.faces spelled out (*)
        ("e9bf00c8dfc309ef", "95b3389f02e1", "8903debc87d161cd", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_off":  # data.faces spelled out (*)
        ("9e3747ad40137abe", "5dea96b2b4de", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#regions_all":  # data.faces spelled out (*)
        ("81078a21d0d0dbb4", "aa4dd5003810", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#regions_fixed":  # data.faces spelled out (*)
        ("d68a41b514cbfbef", "5ef8a2e89d78", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_upper":  # data.faces spelled out (*)
        ("bbefdc1532c9a6ff", "aaf0ac6abe6b", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_lower":  # data.faces spelled out (*)
        ("b388630394523520", "a788e4d823d9", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_eyes":  # data.faces spelled out (*)
        ("5295ca1311d65fe6", "2e9d35931f23", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_eyebrows":  # data.faces spelled out (*)
        ("150582daf498c804", "65a6ca559de3", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#au_cheeks":  # data.faces spelled out (*)
        ("ff4b118698a3d9bb", "27cc66fe2ec6", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#faces_per_clip":  # new variant (*)
        ("434a266a6c08e656", "3aa85b17df32", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#faces_crop":  # new variant (*)
        ("e03a5bcc830dda43", "3d0c84d60c01", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme2_ablation.yaml#faces_measured":  # new variant (*)
        ("2fca4041e349c4d9", "ef6f2ac55bbd", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "casme3.yaml#full":  # data.faces spelled out (*)
        ("083bf722e1e86496", "bcbcb012225b", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#au_off":  # data.faces spelled out (*)
        ("e5b97d3de511c258", "bca61dc767e6", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#regions_all":  # data.faces spelled out (*)
        ("05d9caa15ee9b2cc", "f8594831e488", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#regions_fixed":  # data.faces spelled out (*)
        ("7e9e76bd11b2c456", "004a3ae9d585", "79fcaf287f9bd880", "1f68eecb6af9b45e"),
    "casme3.yaml#single_branch":  # data.faces spelled out (*)
        ("67e32337f742f397", "bca61dc767e6", "443bcb44394acf71", "1f68eecb6af9b45e"),
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
    "megc2019_search.yaml#full":  # dlib faces defaults (**)
        ("0b3229cd00249cf0", "3a2abb6f0662", "2504819d0b3e02e2", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#full":  # data.faces spelled out (*)
        ("b6c152d4f8b9aa81", "55b62f8b185e", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_ce":  # data.faces spelled out (*)
        ("1f6b88b677ffec72", "155b0025eda1", "c89f16616a5db405", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce":  # data.faces spelled out (*)
        ("fe5116f1935ea320", "155b0025eda1", "c89f16616a5db405", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_lstm":  # data.faces spelled out (*)
        ("a2fc612b04b13538", "155b0025eda1", "8db09c658b4d638c", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_gru":  # data.faces spelled out (*)
        ("90366970fad83701", "155b0025eda1", "6eb9dc693ccf0a4a", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#single_wce_gru_cbam":  # data.faces spelled out (*)
        ("82f50ea3b27d1989", "155b0025eda1", "b002dc843e891ebf", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_cbam":  # data.faces spelled out (*)
        ("6b7e1988d37d6b3c", "55b62f8b185e", "91a81ad3fcdd8fb0", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_ec_cbam":  # data.faces spelled out (*)
        ("3324b2f0dea8dc5e", "55b62f8b185e", "0207de5ec7dfe920", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#dual_ec_cbam_mha":  # data.faces spelled out (*)
        ("744324ca721f735c", "55b62f8b185e", "e1cffdf1d7e9ed18", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_off":  # data.faces spelled out (*)
        ("965aa75ea718bee4", "155b0025eda1", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#regions_all":  # data.faces spelled out (*)
        ("726e5c6f52b2e0df", "036e9b375f62", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#regions_fixed":  # data.faces spelled out (*)
        ("36bc98b053820be3", "947aafe6fd6f", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_upper":  # data.faces spelled out (*)
        ("fcce5ac4fdee71c5", "39502e31ab8a", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_lower":  # data.faces spelled out (*)
        ("1b57750049c2f15f", "28f8f2d007f1", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_eyes":  # data.faces spelled out (*)
        ("fe46c8b559ac2d58", "79da040a9734", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_eyebrows":  # data.faces spelled out (*)
        ("993d73b493c3537c", "45d005579897", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#au_cheeks":  # data.faces spelled out (*)
        ("53a0f7e4f9587a2c", "d9059de344b0", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#faces_per_clip":  # new variant (*)
        ("8274e92d01178505", "87e450090e58", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#faces_crop":  # new variant (*)
        ("1d3c027b8fe0aa25", "ef1676c3d628", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "samm_ablation.yaml#faces_measured":  # new variant (*)
        ("5e5e75c4eb17fdda", "9487b4ce4fcc", "ecb01d4425ae58dd", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#full":  # data.faces spelled out (*)
        ("24f8fd35834822a9", "8d5256da7e8f", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_ce":  # data.faces spelled out (*)
        ("3c202c38feb02407", "8d5256da7e8f", "b04675dbadb81e9f", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce":  # data.faces spelled out (*)
        ("c8b405d52b50b243", "8d5256da7e8f", "b04675dbadb81e9f", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_lstm":  # data.faces spelled out (*)
        ("963432be207e9170", "8d5256da7e8f", "81b817867e68c78e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_gru":  # data.faces spelled out (*)
        ("ccd6513d3d8585ab", "8d5256da7e8f", "bc1cc8b844ae5b93", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#single_wce_gru_cbam":  # data.faces spelled out (*)
        ("8fa7d672018769e0", "8d5256da7e8f", "d66ee6bc3e77071e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_cbam":  # data.faces spelled out (*)
        ("1c75410f31b92a33", "8d5256da7e8f", "6846d6762b216e9e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_ec_cbam":  # data.faces spelled out (*)
        ("4cdf9101d720fd33", "8d5256da7e8f", "19ef152e3384d9a6", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#dual_ec_cbam_mha":  # data.faces spelled out (*)
        ("6d84a52eb6907ea0", "8d5256da7e8f", "8306eff8821ba101", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#regions_all":  # data.faces spelled out (*)
        ("b3d4989ae1a30dc3", "b07c1440b2aa", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#regions_fixed":  # data.faces spelled out (*)
        ("ea2c17ca89c16951", "146352f566bb", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#faces_crop":  # new variant (*)
        ("4a624b6772c5ebb8", "85350c8b2b2b", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#regions_all_per_clip":  # new variant (*)
        ("10ffa5ed26c74235", "80170a32eec2", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "smic_ablation.yaml#faces_measured":  # new variant (*)
        ("c801521985c003b9", "d85e73fcfc8d", "bbfb16c3e5e8ad0e", "1f68eecb6af9b45e"),
    "casme_sq.yaml#full":  # data.faces spelled out (*)
        ("52273b8c456000c9", "88acc22aa354", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#au_off":  # data.faces spelled out (*)
        ("fcfb5559fe82b17a", "7d2fcb30eeca", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#regions_all":  # data.faces spelled out (*)
        ("998078d3e6c097fe", "8b2ff0c90eb6", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#regions_fixed":  # data.faces spelled out (*)
        ("4db03c4acac76b94", "2105afd3bb0c", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "casme_sq.yaml#single_branch":  # data.faces spelled out (*)
        ("8f82488ea15ee6c8", "7d2fcb30eeca", "158a93ad6fbff159", "1f68eecb6af9b45e"),
    "casme_sq.yaml#faces_measured":  # new variant (*)
        ("50760982642622db", "8fd7db0bb5ea", "e4c4ee8019c002a2", "1f68eecb6af9b45e"),
    "meview.yaml#full":  # data.faces spelled out (*)
        ("dcb15177ea47942d", "dc4d95953883", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#au_off":  # data.faces spelled out (*)
        ("1d22d6e43c817f53", "71a0bb1f5e78", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#regions_all":  # data.faces spelled out (*)
        ("d3868a57d8abf3e1", "a5ffdc2e419a", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#regions_fixed":  # data.faces spelled out (*)
        ("8744bda32ba5d6fc", "25849f500e80", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
    "meview.yaml#single_branch":  # data.faces spelled out (*)
        ("410d70067dd1fa15", "71a0bb1f5e78", "102738f933341a98", "1f68eecb6af9b45e"),
    "meview.yaml#faces_measured":  # new variant (*)
        ("779147802a16839e", "0f18629be5df", "8c54a22e5b6ad9b8", "1f68eecb6af9b45e"),
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
