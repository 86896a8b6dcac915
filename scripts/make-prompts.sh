#!/usr/bin/env bash
# Generates the IVR prompts (R27) into dialplans/prompts/ as 8 kHz mono 16-bit PCM WAV,
# the only format the media layer plays (G.711 runs at 8 kHz).
#
# Texts are the 8890 service standard's scripts (seed §6.1.1, §6.1.5, §6.5.1–§6.5.3) and
# SPEC R27; dialplans/prompts/README.md lists them. Synthesised with espeak-ng: good enough
# to test and run the IVR; replace the WAVs with recorded speech for production, keeping
# the file names and format.
#
# Requires espeak-ng and sox (scripts/install-test-deps.sh --prompts). Usage: scripts/make-prompts.sh [output-dir]
set -euo pipefail

out_dir="${1:-$(dirname "$0")/../dialplans/prompts}"
mkdir -p "$out_dir"

# `cmn` reads hanzi as pinyin spoken by the English voice in espeak-ng 1.51; the
# `cmn-latn-pinyin` variant speaks that pinyin as Mandarin.
voice="cmn-latn-pinyin"
# Words per minute: keeps the longest script (the nuisance warning) under 15 s while
# still a calm pace (the standard asks for 语速适中).
speed=220

# name|text, exactly as the standard words them. "8890" is spoken digit by digit below.
prompts=$(
	cat <<'EOF'
greeting|您好,这里是8890政务便民服务平台,很高兴为您服务。请问有什么可以帮您?
no-input|您好,请问有什么可以帮您?
no-input-goodbye|抱歉听不到您的声音,如需帮助,请重新来电,感谢您的信任,再见。
out-of-scope|您的问题已经记录。如果您有其他需要欢迎您随时拨打8890热线,祝您生活愉快!再见!
nuisance-warning|很抱歉打断您,我们的电话有全程录音功能,并能显示来电号码。如果您暂时没有明确的需求,麻烦您把电话线路让给其他有需要的人。感谢您的配合,再见!
closing|感谢您的来电,有需要欢迎您随时拨打8890热线。
agent-number-prefix|我的工号是
survey-invitation|请稍后对我的服务进行评价,祝您生活愉快,再见。
queue-wait|您好,目前话务繁忙,请您稍候,我们将尽快为您服务。
callback-offer|如不便等待,请按1,我们将尽快给您回电。
callback-accepted|您的回电请求已经记录,我们将尽快给您回电。感谢您的来电,再见。
menu|政策咨询请按1,便民服务请按2,投诉请按3,对本热线服务的投诉请按4,其他问题请稍候。
invalid-input|您的输入有误,请重新选择。
survey-rate|请对本次服务进行评价:非常满意请按5,满意请按4,一般请按3,不满意请按2,非常不满意请按1。
survey-thanks|感谢您的评价,再见。
position-prefix|您前面还有
position-suffix|位
digit-0|零
digit-1|一
digit-2|二
digit-3|三
digit-4|四
digit-5|五
digit-6|六
digit-7|七
digit-8|八
digit-9|九
agent-logged-in|签入成功,您已进入就绪状态。
agent-logged-out|签出成功。
agent-paused|已暂停接听。
agent-resumed|已恢复接听。
feature-failed|操作未成功,请联系管理人员。
EOF
)

while IFS='|' read -r name text; do
	# Hotline numbers are read digit by digit (八八九零), not as a quantity (八千八百九十);
	# the key in the callback offer is a key name (按一), never a quantity either.
	spoken="${text//8890/八八九零}"
	spoken="${spoken//按1/按一}"
	target="$out_dir/$name.wav"
	espeak-ng -v "$voice" -s "$speed" --stdout "$spoken" 2>/dev/null |
		sox -t wav - -r 8000 -c 1 -b 16 -e signed-integer "$target" gain -n -3
	echo "$target: $text"
done <<<"$prompts"

# Hold music: a soft two-note chime every two seconds, 14 s long so it loops rarely
# enough not to grate. Synthesised, so it carries no licence of its own.
hold="$out_dir/hold-music.wav"
chime=$(mktemp --suffix=.wav)
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$chime" \
	synth 0.6 sine 523.25 fade q 0.02 0.6 0.4 : synth 0.6 sine 659.25 fade q 0.02 0.6 0.4 : \
	synth 0.8 sine 0
sox "$chime" -r 8000 -c 1 -b 16 -e signed-integer "$hold" gain -n -12 repeat 6
rm -f "$chime"
echo "$hold: (hold music)"
