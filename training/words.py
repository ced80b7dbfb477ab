"""Common English words the demo model learns to copy from user messages.

The tiny model can only emit token ids that were in its training vocabulary. Drawing the
"repeat after me" texts, search topics and other copied spans from this list gives it a few
thousand ordinary word pieces to echo, instead of only the handful its fixed templates use.
"""

from __future__ import annotations

_TEXT = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number
night point home water room mother area money story fact month lot right study book eye job word
business issue side kind head house service friend father power hour game line end member law car
city community name president team minute idea kid body information back parent face others level
office door health person art war history party result change morning reason research girl guy
moment air teacher force education foot boy age policy music market sense nation plan college
interest death experience effect use class control care field development role effort rate heart
drug show leader light voice wife police mind price report decision son view relationship town
road arm difference value building action model season society tax director position player record
paper space ground form event official matter center couple site project activity star table need
court oil situation cost industry figure street image phone data picture practice piece land
product doctor wall patient worker news test movie north love support technology step baby computer
type attention film tree source organization hair window evidence population site truth garden
bird river ocean mountain forest island lake beach desert valley hill sky sun moon cloud rain snow
wind storm weather summer winter spring autumn animal dog cat horse fish cow sheep chicken lion tiger
bear rabbit mouse apple banana orange grape lemon bread cheese butter milk coffee tea juice rice
pasta pizza soup salad cake cookie chocolate sugar salt pepper egg meat beef pork potato tomato onion
carrot bean corn flower grass leaf seed stone rock sand metal gold silver iron glass wood plastic
paper cotton wool shirt dress shoe hat coat jacket bag box cup plate bowl knife fork spoon bottle
chair bed desk lamp clock key pen pencil letter card map ticket gift toy ball kite boat train plane
bus bike truck ship engine wheel bridge tower castle church temple museum library hospital bank shop
store hotel restaurant kitchen bathroom bedroom garage roof floor stairs corner station airport
park farm factory village capital border coast harbor port king queen prince princess knight soldier
pilot driver farmer artist writer singer dancer actor chef nurse lawyer engineer scientist painter
poet judge captain guard guest neighbor stranger hero giant dragon robot ghost wizard pirate
planet rocket galaxy universe science math physics chemistry biology language english history
poem song dance movie theater concert festival holiday birthday wedding party dinner lunch breakfast
journey trip travel adventure vacation visit holiday weekend today tomorrow yesterday evening
afternoon midnight hour second minute century future past present moment memory dream hope fear
joy anger peace freedom justice beauty wisdom courage honor trust faith luck chance secret mystery
puzzle answer question lesson course exam grade skill talent habit hobby sport soccer tennis golf
chess guitar piano violin drum camera radio television screen keyboard internet website email
message network signal battery energy fuel electricity machine tool hammer rope chain lock
color red blue green yellow black white brown purple pink gray orange silver golden dark bright
good new first last long great little own other old right big high different small large next
early young important few public bad same able late hard major better best free sure clear
real whole strong certain simple easy full special quick fast slow quiet loud warm cold hot cool
soft heavy light deep wide narrow short tall rich poor happy sad angry calm brave kind gentle
clever smart wise funny strange curious lucky proud busy lazy tired hungry thirsty sleepy healthy
sick clean dirty fresh sweet sour bitter spicy salty empty rare common famous ancient modern
fancy plain pretty ugly lovely wonderful terrible amazing beautiful perfect fine careful honest
polite friendly lonely safe dangerous wild quiet noisy smooth rough sharp round flat square
be have do say go get make know think take see come want look use find give tell work call try
ask need feel become leave put mean keep let begin seem help talk turn start show hear play run
move like live believe hold bring happen write provide sit stand lose pay meet include continue
set learn change lead understand watch follow stop create speak read allow add spend grow open
walk win offer remember love consider appear buy wait serve die send expect build stay fall cut
reach kill remain suggest raise pass sell require report decide pull return explain carry develop
hope drive break receive agree support hit produce eat cover catch draw choose cause point listen
realize place close involve increase sing swim fly jump climb dance paint cook bake wash clean
sleep wake smile laugh cry shout whisper dream wish travel visit explore discover invent repair
fix plant pick throw kick push lift drop fill pour mix stir taste smell touch count measure share
borrow lend teach study practice train join enjoy prefer hate miss forget imagine wonder guess
always never often sometimes usually really very quite almost already still just also only even
again soon later now then here there everywhere together maybe perhaps probably certainly
slowly quickly carefully quietly happily easily finally suddenly early
one two three four five six seven eight nine ten eleven twelve twenty thirty hundred thousand
million first second third half dozen
the a an and or but if so because while when where what which who whom whose why how than that
this these those there their they them we us our you your he him his she her it its my me mine
to of in on at by for with from about into over under after before between through during
without within along across behind beyond near around above below up down out off
could would should must might shall can will may any each every both either neither
some many much more most less least few several enough such own same other another
please thanks thank sorry hello greetings welcome okay yes no not maybe
phrase sentence word words text line page note list following previous next above below
internet online web search browser link video photo picture article blog post forum chat
equal equals plus minus times divided total sum average number numbers digit percent
weather forecast temperature degree degrees rainy sunny cloudy windy snowy foggy humid dry
north south east west left right center middle top bottom front inside outside
city town country state street avenue road highway corner district region continent
monday tuesday wednesday thursday friday saturday sunday january february march april june
july august september october november december
price cost cheap expensive sale discount money coin dollar euro pound cash bill
friend friends family brother sister uncle aunt cousin grandmother grandfather husband
teacher student class homework exam test lesson school university college degree
doctor nurse hospital medicine health fever cold flu pain
breakfast lunch dinner snack meal recipe kitchen oven pan pot plate
happy sad excited nervous worried bored surprised confused
computer laptop phone tablet app software hardware code program file folder password
send receive open close save delete copy paste print share upload download install update
tell explain describe show find give make take bring carry check compare
nice great good fine awesome cool excellent terrible awful bad okay
quickly slowly today tonight soon later now already still yet
about around almost exactly nearly roughly maybe probably
""".split()

# Order-preserving de-duplication: the list is data, sampled by index with a fixed seed.
WORDS: tuple[str, ...] = tuple(dict.fromkeys(_TEXT))
